// The runner protocol's wire types (conformance/README.md), reading a
// step's arguments into the SDK's types, and reporting errors with their
// canonical gRPC code.

import { Code, ConnectError, type JsonObject, type JsonValue } from "@chirpy/client";

/** One line of stdin. */
export interface Request {
  id: JsonValue;
  kind: string;
  args: JsonObject;
}

/** The error of a failed step. */
export interface StepError {
  /** The gRPC code in upper snake case, such as `INVALID_ARGUMENT`. */
  code: string;
  message: string;
}

/** One line of stdout. */
export type Response =
  | { id: JsonValue; result: JsonValue }
  | { id: JsonValue; error: StepError }
  | { id: JsonValue; unsupported: string };

/**
 * A step this runner cannot express through the SDK: an unknown argument,
 * one of a type the SDK's API does not take (a string where a number goes,
 * a timestamp that is not RFC 3339, an unknown state name), a worker handle
 * in use or unknown. Reported as `unsupported`, like the other runners do.
 */
export class Unsupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Unsupported";
  }
}

/** The canonical names of connect's codes. */
const CODE_NAMES: Record<Code, string> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

/**
 * A step's error as the protocol reports it. The SDK's errors are
 * `ConnectError`s with the server's code; anything else it throws (its own
 * checks, such as a payload `JSON.stringify` refuses, are plain `TypeError`s)
 * carries no code, which `ConnectError.from` makes `UNKNOWN`.
 */
export function stepError(err: unknown): StepError {
  const connectError = ConnectError.from(err);
  return { code: CODE_NAMES[connectError.code] ?? "UNKNOWN", message: connectError.rawMessage };
}

export function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads the arguments of one step; a missing or null argument is `undefined`. */
export class Args {
  /** `where` names the arguments in messages, such as `push` or `push: jobs[1]`. */
  constructor(
    private readonly args: JsonObject,
    private readonly where: string,
  ) {}

  /** Refuses arguments other than `keys`: a case that means something this runner would ignore. */
  allow(...keys: string[]): this {
    for (const key of Object.keys(this.args)) {
      if (!keys.includes(key)) throw new Unsupported(`${this.where}: unknown argument ${key}`);
    }
    return this;
  }

  value(key: string): JsonValue | undefined {
    const value = this.args[key];
    return value === null ? undefined : value;
  }

  private wrong(key: string, want: string): Unsupported {
    return new Unsupported(`${this.where}: ${key}: want ${want}, got ${JSON.stringify(this.args[key])}`);
  }

  string(key: string): string | undefined {
    const value = this.value(key);
    if (value === undefined || typeof value === "string") return value;
    throw this.wrong(key, "a string");
  }

  /** A whole number (1 and 1.0 alike). */
  integer(key: string): number | undefined {
    const value = this.value(key);
    if (value === undefined || Number.isSafeInteger(value)) return value as number | undefined;
    throw this.wrong(key, "an integer");
  }

  object(key: string): Args | undefined {
    const value = this.value(key);
    if (value === undefined) return undefined;
    if (isObject(value)) return new Args(value, `${this.where}: ${key}`);
    throw this.wrong(key, "an object");
  }

  strings(key: string): string[] | undefined {
    const value = this.value(key);
    if (value === undefined) return undefined;
    if (Array.isArray(value) && value.every((v): v is string => typeof v === "string")) return value;
    throw this.wrong(key, "a list of strings");
  }

  objects(key: string): Args[] | undefined {
    const value = this.value(key);
    if (value === undefined) return undefined;
    if (Array.isArray(value) && value.every(isObject)) {
      return value.map((v, i) => new Args(v as JsonObject, `${this.where}: ${key}[${i}]`));
    }
    throw this.wrong(key, "a list of objects");
  }

  stringMap(key: string): Record<string, string> | undefined {
    const value = this.value(key);
    if (value === undefined) return undefined;
    if (isObject(value) && Object.values(value).every((v) => typeof v === "string")) {
      return value as Record<string, string>;
    }
    throw this.wrong(key, "an object of strings");
  }

  /** An RFC 3339 timestamp, as a `Date` (to the millisecond: the SDK's type). */
  date(key: string): Date | undefined {
    const text = this.string(key);
    if (text === undefined) return undefined;
    const date = new Date(text);
    if (!/^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$/.test(text) || Number.isNaN(date.getTime())) {
      throw this.wrong(key, "an RFC 3339 timestamp");
    }
    return date;
  }
}
