/**
 * One shared instance per distinct value, for the values MIC would otherwise hold once per pod: every
 * AzureAssignedIdentity read from the API server arrives as its own JSON, so ten thousand of them bring ten thousand
 * copies of the same embedded AzureIdentity, VM/VMSS resource ID and node name. Interned values are shared, so they
 * must never be mutated (objects are frozen by their callers).
 *
 * Bounded without bookkeeping: when `maxSize` distinct values are held, the pool starts over. Values already handed
 * out stay valid (interning only saves memory), and MIC interns only values with few distinct instances — VM/VMSS
 * resource IDs, node names, embedded identities and bindings — so a cluster stays far below the bound.
 */
export class InternPool<T> {
  readonly #values = new Map<string, T>();
  readonly #maxSize: number;

  constructor(maxSize: number) {
    if (!Number.isInteger(maxSize) || maxSize < 1) throw new RangeError(`InternPool: maxSize must be a positive integer, got ${maxSize}`);
    this.#maxSize = maxSize;
  }

  get size(): number {
    return this.#values.size;
  }

  /** The instance held for `key`, or `value` (made once by `make`) from now on. */
  intern(key: string, make: () => T): T {
    const held = this.#values.get(key);
    if (held !== undefined || this.#values.has(key)) return held as T;
    if (this.#values.size >= this.#maxSize) this.#values.clear();
    const value = make();
    this.#values.set(key, value);
    return value;
  }
}

/** Freezes `value` and every object and array inside it (interned values are shared). */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== "object" || Object.isFrozen(value)) return value;
  for (const inner of Object.values(value)) deepFreeze(inner);
  return Object.freeze(value);
}
