/**
 * Exact decimal arithmetic for canonical prices: `price x price_multiplier` is computed on
 * the decimal digits with BigInt and only the result is rounded (once) to a double, so
 * `0.1 x 3` is `0.3`, never `0.30000000000000004`. Beside the schemas because both sides
 * use it: normalization (actors/) multiplies, reference data (stores/) validates multipliers.
 */

/** A decimal number `units x 10^-scale`. */
export interface Decimal {
  units: bigint;
  scale: number;
}

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;
/** Exponents beyond this are outside double range anyway; bounding them keeps BigInt cheap. */
const MAX_EXPONENT = 1000;

/**
 * Parses a decimal string (`-12.50`, `.5`, `1e-7`) or a finite number (by its shortest
 * round-trip text) into an exact decimal; undefined when it is neither.
 */
export function parseDecimal(value: string | number): Decimal | undefined {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return undefined;
    value = String(value);
  }
  const m = DECIMAL.exec(value);
  if (!m) return undefined;
  const intDigits = m[2] ?? "";
  const fracDigits = m[3] ?? "";
  if (intDigits.length + fracDigits.length === 0) return undefined;
  const exponent = m[4] === undefined ? 0 : Number(m[4]);
  if (Math.abs(exponent) > MAX_EXPONENT) return undefined;
  let units = BigInt(intDigits + fracDigits || "0");
  let scale = fracDigits.length - exponent;
  if (scale < 0) {
    units *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { units: m[1] === "-" ? -units : units, scale };
}

/** The exact product of two decimals. */
export function multiplyDecimals(a: Decimal, b: Decimal): Decimal {
  return { units: a.units * b.units, scale: a.scale + b.scale };
}

/** The double nearest to the decimal (JavaScript's string-to-number rounds correctly). */
export function decimalToNumber(d: Decimal): number {
  return Number(`${d.units}e${-d.scale}`);
}
