// Parses a Mermaid diagram read from stdin with Mermaid's own parser; prints {"ok", "type"} or
// {"ok": false, "error"} and exits 1 on a parse error. jsdom stands in for the browser Mermaid
// expects (its parser reads nothing from the page).
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
let text = "";
for await (const chunk of process.stdin) text += chunk;
try {
  const parsed = await mermaid.parse(text);
  console.log(JSON.stringify({ ok: true, type: parsed.diagramType }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: String(error.message || error) }));
  process.exitCode = 1;
}
