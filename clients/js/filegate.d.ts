// Types of filegate.js, the filegate uploader (an ES module with no dependencies).

export type Mode = "Firm" | "Profile" | "Contact" | "Message" | "Template" | "Import";

export interface Connection {
  /** The service's base URL, e.g. `https://files.example`. */
  server: string;
  /** An API key, sent as `X-API-Key`. */
  apiKey: string;
  signal?: AbortSignal;
}

export interface UploadOptions extends Connection {
  mode: Mode;
  /** Bytes per chunk; default 8 MiB. */
  chunkSize?: number;
  /** Chunks in flight after block 0; default 4. */
  parallel?: number;
  /** Tries per chunk (network errors, 408, 429, 5xx); default 6. */
  tries?: number;
  /** Bytes the server has, of the whole file, after each chunk. */
  onProgress?: (sentBytes: number, totalBytes: number) => void;
  /** Called with the new upload's id once block 0 is accepted: keep it to resume with. */
  onStart?: (fileId: string) => void;
  /** Resume this upload: only the blocks the server says are missing are sent. */
  resume?: string;
  /** The stored file name; default the File's name. */
  fileName?: string;
}

export interface UploadResult {
  fileId: string;
  /** The file's URL (the blob's, or the service's content route). */
  url: string | null;
  size: number;
}

export interface FileStatus {
  fileId: string;
  mode: Mode;
  fileName: string;
  contentType: string;
  isComplete: boolean;
  url: string | null;
  totalBlocks: number;
  receivedCount: number;
  /** Missing blocks as runs `[first, last]`, inclusive. */
  missingRanges: [number, number][];
  /** Only for uploads of at most 1000 blocks. */
  receivedBlocks?: number[];
  missingBlocks?: number[];
  size: number;
  expiresAt: string | null;
  sha256: string | null;
}

/** An error of the API: the envelope's message, and the HTTP status (0: no answer). */
export class FilegateError extends Error {
  readonly status: number;
  readonly body: unknown;
}

export function upload(file: Blob, options: UploadOptions): Promise<UploadResult>;
export function status(fileId: string, options: Connection): Promise<FileStatus>;
export function remove(fileId: string, options: Connection): Promise<{ fileId: string }>;
