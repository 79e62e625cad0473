// A wattson output format in JavaScript (ComponentizeJS), against
// wattson:plugin@0.2.0: one line per record, `vm-uuid joules status`.
//
// WIT -> JS mapping used here: exported world functions are exported ES functions
// (kebab-case names become camelCase); record fields are camelCase properties
// (`vm-uuid` -> `vmUuid`); option<T> is the value or `undefined`; variants are
// `{ tag, val }`; enums are their kebab-case case names as strings; u64/s64 are
// BigInt; list<u8> may be returned as a Uint8Array. For `result<T, string>` return
// T for ok and `throw` a string (the thrown value is the err payload).
import { log } from "wattson:plugin/host@0.2.0";

export function describe() {
  return {
    name: "js-lines",
    version: "0.2.0",
    description: "One line per record: vm-uuid, joules and status (JavaScript guest)",
    mediaType: "text/plain",
    extension: "txt",
    params: [],
  };
}

export function render(records, params) {
  if (params.length > 0) throw `js-lines takes no params, got ${params[0].name}`;
  let text = "";
  for (const r of records) text += `${r.vmUuid} ${r.joules} ${r.status}\n`;
  log("debug", `rendered ${records.length} records`);
  return [new TextEncoder().encode(text)];
}
