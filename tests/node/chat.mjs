// The official openai npm package against the emulator (run by tests/chat/test_node.py).
// EMULATOR_URL is the emulator's base URL, API_KEY an aio_ key. Prints one JSON line.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: `${process.env.EMULATOR_URL}/api/v1`, apiKey: process.env.API_KEY });
const messages = [{ role: "user", content: "What is the capital of Norway?" }];

const whole = await client.chat.completions.create({ model: "gemini", messages, stream: false });

const stream = await client.chat.completions.create({
  model: "gemini", messages, stream: true, stream_options: { include_usage: true },
});
let streamed = "";
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) streamed += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}

let error = null;
try {
  await client.chat.completions.create({ model: "gemini", messages: [], stream: false });
} catch (e) {
  error = { name: e.constructor.name, status: e.status, message: e.error?.message ?? e.message };
}

console.log(JSON.stringify({
  content: whole.choices[0].message.content, usage: whole.usage, credits: whole.credits_consumed,
  streamed, streamedUsage: usage, error,
}));
