/**
 * A model folder or weight file that cannot be used as it is: bad config.json, malformed or hostile
 * safetensors / pytorch_model.bin, missing or mis-shaped tensors. The user fixes it (a different file,
 * a re-export), so it is a UsageError: the CLI prints the message alone.
 */
import { UsageError } from '../util/errors.js';

export class ModelFormatError extends UsageError {
  /** The file the problem was found in. */
  readonly file: string;

  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
    this.name = 'ModelFormatError';
    this.file = file;
  }
}
