// Payloads and results are any JSON value on the wire (`google.protobuf.Value`);
// this module converts between them and plain JavaScript values.

import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";

export type { JsonValue, JsonObject } from "@bufbuild/protobuf";

/**
 * Converts a JavaScript value to a `google.protobuf.Value` with the semantics
 * of `JSON.stringify`: `toJSON()` is honoured (a `Date` becomes its ISO
 * string), `undefined` members are dropped.
 *
 * @throws TypeError when the value has no JSON form (`undefined`, a function,
 *   a `bigint`, a cycle).
 */
export function toValue(value: unknown, what = "payload"): Value {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new TypeError(`${what} is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (text === undefined) {
    throw new TypeError(`${what} is not JSON: ${value === undefined ? "undefined" : typeof value}`);
  }
  return fromJson(ValueSchema, JSON.parse(text) as JsonValue);
}

/** Converts a `google.protobuf.Value` to plain JSON; an unset value is `null`. */
export function fromValue(value: Value | undefined): JsonValue {
  return value === undefined ? null : toJson(ValueSchema, value);
}
