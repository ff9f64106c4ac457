// The official openai Node SDK against a base URL: chat, a chat stream with usage, completions,
// the Responses API plain and streamed. Prints one JSON object; tests/vllm/test_clients.py reads it.
//   node client.mjs BASE_URL API_KEY MODEL
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const extra = { ignore_eos: true };

const chat = await client.chat.completions.create({ model, messages: [{ role: "user", content: "hello world" }], max_tokens: 4, ...extra });
const chunks = [];
for await (const chunk of await client.chat.completions.create({
  model, messages: [{ role: "user", content: "hello world" }], max_tokens: 4, stream: true,
  stream_options: { include_usage: true }, ...extra,
})) chunks.push(chunk);
const completion = await client.completions.create({ model, prompt: "the quick brown fox", max_tokens: 4, ...extra });
const response = await client.responses.create({ model, input: "hello world", max_output_tokens: 4, ...extra });
const events = [];
let streamedUsage = null;
for await (const event of await client.responses.create({ model, input: "hello world", max_output_tokens: 4, stream: true, ...extra })) {
  events.push(event.type);
  if (event.type === "response.completed") streamedUsage = event.response.usage;
}
let refused = null;
try {
  await new OpenAI({ baseURL, apiKey: "sk-wrong", maxRetries: 0 }).models.list();
} catch (error) {
  refused = error.status;
}
console.log(JSON.stringify({
  chat: { finish: chat.choices[0].finish_reason, usage: chat.usage },
  stream: { chunks: chunks.length, usage: chunks.at(-1).usage, requestId: chunks[0].id },
  completion: { usage: completion.usage },
  response: { status: response.status, usage: response.usage },
  responseStream: { events: [events[0], events.at(-1)], usage: streamedUsage },
  models: (await client.models.list()).data.map((m) => m.id),
  refused,
}));
