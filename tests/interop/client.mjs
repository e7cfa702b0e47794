// The official TypeScript SDK client against services-bot's MCP server, as tests/test_mcp_interop.py runs it:
//   node client.mjs stdio <command> [args...]     (the server's environment is this process's)
//   node client.mjs http <url>                    (MCP_TOKEN in the environment, when the server wants one)
// MCP_SDK=2 uses the 2.x client (@modelcontextprotocol/client) instead of 1.x (@modelcontextprotocol/sdk).
// Lists and calls every tool, validates every structured result against the tool's output schema with ajv,
// pages through list_services reading only the text content, makes the mistakes a model makes, and prints
// one JSON report on stdout for the test to judge.
import Ajv from "ajv";
import addFormats from "ajv-formats";

const v2 = process.env.MCP_SDK === "2";
const { Client, StreamableHTTPClientTransport } = v2
  ? await import("@modelcontextprotocol/client")
  : {
      ...(await import("@modelcontextprotocol/sdk/client/index.js")),
      ...(await import("@modelcontextprotocol/sdk/client/streamableHttp.js")),
    };
const { StdioClientTransport } = v2
  ? await import("@modelcontextprotocol/client/stdio")
  : await import("@modelcontextprotocol/sdk/client/stdio.js");

const [mode, ...rest] = process.argv.slice(2);
const transport =
  mode === "stdio"
    ? new StdioClientTransport({ command: rest[0], args: rest.slice(1), env: process.env, stderr: "inherit" })
    : new StreamableHTTPClientTransport(new URL(rest[0]), {
        requestInit: process.env.MCP_TOKEN ? { headers: { Authorization: `Bearer ${process.env.MCP_TOKEN}` } } : {},
      });
const client = new Client({ name: "services-bot-interop", version: "1.0.0" });
await client.connect(transport);

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
const report = { capabilities: client.getServerCapabilities() };
const text = (result) => result.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");

const { tools } = await client.listTools();
report.tools = {};
const examples = {
  list_services: { limit: 5 },
  get_service: null, // filled from a listed service, as are the two below
  get_service_events: null,
  get_service_load: null,
  summarize_services: {},
  list_transitions: { since: "1h", limit: 5 },
  list_targets: {},
};
for (const tool of tools) {
  const validate = tool.outputSchema ? ajv.compile(tool.outputSchema) : null;
  let args = examples[tool.name] ?? {};
  if (["get_service", "get_service_events", "get_service_load"].includes(tool.name)) {
    const first = await client.callTool({ name: "list_services", arguments: { limit: 1 } });
    args = { service: first.structuredContent.services[0].service_id };
  }
  const result = await client.callTool({ name: tool.name, arguments: args });
  const valid = result.isError || !validate ? null : validate(result.structuredContent);
  report.tools[tool.name] = {
    title: tool.title ?? null,
    hasOutputSchema: Boolean(tool.outputSchema),
    isError: Boolean(result.isError),
    valid,
    schemaErrors: valid === false ? validate.errors : null,
    text: text(result).slice(0, 2000),
  };
}

// A model that reads only the text: the cursor is in it, literally, until the last page.
const seen = new Set();
let cursor = null;
let total = null;
let pages = 0;
do {
  const args = { limit: 7, sort_by: "name", ...(cursor ? { cursor } : {}) };
  const page = text(await client.callTool({ name: "list_services", arguments: args }));
  total = Number(/total: (\d+) services/.exec(page)[1]);
  const match = /next_cursor: "([^"]+)"/.exec(page);
  cursor = match ? match[1] : null;
  for (const line of page.split("\n")) {
    const id = /\| ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) \|/.exec(line);
    if (id) seen.add(id[1]);
  }
  pages += 1;
} while (cursor && pages < 100);
report.paging = { total, seen: seen.size, pages, lastCursor: cursor };

const mistakes = {};
const call = async (name, args) => {
  try {
    const result = await client.callTool({ name, arguments: args });
    return { isError: Boolean(result.isError), text: text(result), structured: result.structuredContent ?? null };
  } catch (error) {
    return { code: error.code ?? null, message: String(error.message) };
  }
};
mistakes.misspelled = await call("list_services", { stauts: ["failed"] });
mistakes.capitals = await call("list_services", { status: "FAILED" });
mistakes.unknownTool = await call("no_such_tool", {});
try {
  await client.getPrompt({ name: "no_such_prompt", arguments: {} });
  mistakes.unknownPrompt = { code: null };
} catch (error) {
  mistakes.unknownPrompt = { code: error.code ?? null, message: String(error.message) };
}
report.mistakes = mistakes;

await client.close();
process.stdout.write(JSON.stringify(report) + "\n");
