/** Device selection and GPU memory policy (see select.ts and batching.ts). */
export * from './select.js';
export * from './batching.js';
