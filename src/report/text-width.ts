/**
 * Text widths for Vega's layout without a canvas. Vega's fallback guesses 0.8 em per character, about
 * half again too wide for a proportional sans-serif, which leaves wide empty margins around every chart.
 * This uses per-character advance widths of DejaVu Sans (the common Linux sans; others are narrower,
 * so labels never collide), in em.
 */
const NARROW: Record<string, number> = {
  ' ': 0.318, '.': 0.318, ',': 0.318, ':': 0.337, ';': 0.337, '!': 0.4, "'": 0.275, '"': 0.46, '|': 0.337,
  i: 0.278, j: 0.278, l: 0.278, I: 0.295, f: 0.352, t: 0.392, r: 0.411, '(': 0.39, ')': 0.39, '[': 0.39, ']': 0.39,
  '-': 0.361, '/': 0.337, '_': 0.5, m: 0.974, w: 0.818, M: 0.863, W: 0.989, '%': 0.95, '±': 0.838, '≥': 0.838, '…': 1.0,
};

function charEm(ch: string): number {
  const n = NARROW[ch];
  if (n !== undefined) return n;
  const cp = ch.codePointAt(0)!;
  if (cp >= 0x30 && cp <= 0x39) return 0.636; // digits
  if (cp >= 0x61 && cp <= 0x7a) return 0.615; // a-z
  if (cp >= 0x41 && cp <= 0x5a) return 0.71; // A-Z
  if (cp >= 0x1100 && (cp <= 0x115f || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xff00 && cp <= 0xff60))) return 1.0; // CJK, Hangul
  return 0.65;
}

export function estimateTextWidth(text: string, fontSize: number, bold = false): number {
  let em = 0;
  for (const ch of text) em += charEm(ch);
  return em * fontSize * (bold ? 1.12 : 1);
}

interface TextItem {
  fontSize?: number;
  fontWeight?: string | number;
  limit?: number;
}

/** Vega's textMetrics.width signature: (item, text) -> pixels; labels longer than item.limit are truncated by Vega. */
export function vegaTextWidth(item: TextItem, text: unknown): number {
  const size = item.fontSize != null ? Number(item.fontSize) || 0 : 11;
  const s = text == null ? '' : String(text).trim();
  const bold = item.fontWeight === 'bold' || Number(item.fontWeight) >= 600;
  return estimateTextWidth(s, size, bold);
}
