/**
 * Splits a byte stream into lines at `\n` bytes and decodes each whole line as UTF-8, so a chunk boundary inside
 * a line — or inside a multi-byte character — never corrupts an event. A line longer than `maxLineBytes` fails
 * rather than buffering without bound.
 */
export class LineSplitter {
  readonly #maxLineBytes: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(maxLineBytes: number) {
    this.#maxLineBytes = maxLineBytes;
  }

  /** The complete lines this chunk finishes (without their `\n`; blank lines dropped). */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    let newline: number;
    while ((newline = chunk.indexOf(0x0a, start)) !== -1) {
      const piece = chunk.subarray(start, newline);
      const line = this.#pendingBytes === 0 ? piece : Buffer.concat([...this.#pending, piece]);
      this.#pending = [];
      this.#pendingBytes = 0;
      if (line.length > this.#maxLineBytes) throw new RangeError(`a watch event exceeded ${this.#maxLineBytes} bytes`);
      const text = line.toString("utf8").trim();
      if (text !== "") lines.push(text);
      start = newline + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.#pendingBytes += rest.length;
      if (this.#pendingBytes > this.#maxLineBytes) throw new RangeError(`a watch event exceeded ${this.#maxLineBytes} bytes`);
      // Copied: the stream may reuse its buffer.
      this.#pending.push(Buffer.from(rest));
    }
    return lines;
  }

  /** Bytes of an unfinished line (a stream that ends here was cut mid-event). */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }
}
