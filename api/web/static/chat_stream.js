// A chat answer streamed over a POST: EventSource cannot send a body, so this reads the
// server-sent events off fetch()'s ReadableStream itself. The server sends `token` events
// (the reply's text as the model writes it), then one `message` (the stored reply) or one
// `error` ({detail}). Nothing here touches the page: the view gets callbacks.
import { session } from "./app.js";

/** The stream ended without its `message`: an `error` frame, or the connection was cut. */
export class StreamError extends Error {
  constructor(message, { cut }) {
    super(message);
    this.cut = cut; // true: the connection went; false: the server said why in an error frame
  }
}

/**
 * POST `body` to `path` and stream the answer: `onToken(text)` per piece; resolves with the
 * stored reply. A refusal before the stream (404, 403, 429, ...) throws Error(server detail);
 * an error frame or a cut stream throws StreamError (the tokens already given stay given).
 */
export async function streamAnswer(path, body, { onToken, signal }) {
  const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body), signal });
  if (!response.ok) {
    const problem = await response.json().catch(() => null);
    const detail = problem && (problem.detail || problem.title);
    throw new Error(typeof detail === "string" ? detail : `${response.status} ${response.statusText}`);
  }
  let reply = null;
  let failure = null;
  const parse = sseParser((event, data) => {
    if (event === "token") onToken(data);
    else if (event === "message") reply = JSON.parse(data);
    else if (event === "error") failure = errorDetail(data);
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parse(value);
    }
    parse("", true);
  } catch (error) {
    if (signal && signal.aborted) throw error;
    throw new StreamError("the answer's stream was cut before it ended", { cut: true });
  }
  if (failure) throw new StreamError(failure, { cut: false });
  if (!reply) throw new StreamError("the answer's stream was cut before it ended", { cut: true });
  return reply;
}

/**
 * An SSE parser (the WHATWG rules that matter here: CRLF, CR or LF line ends, split across
 * chunks; `event:` and multi-line `data:`; comments). `feed(text, end)` calls
 * `onEvent(event, data)` for each complete event.
 */
export function sseParser(onEvent) {
  let buffer = "";
  let event = "";
  let data = [];

  function line(text) {
    if (text === "") {
      if (data.length) onEvent(event || "message", data.join("\n"));
      event = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) return; // a comment: the server's keep-alive ping
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }

  return function feed(text, end = false) {
    buffer += text;
    const ends = /\r\n|\r|\n/g;
    let start = 0;
    let match;
    while ((match = ends.exec(buffer))) {
      // A CR last in the buffer may be the first half of a CRLF still on its way.
      if (!end && match[0] === "\r" && match.index === buffer.length - 1) break;
      line(buffer.slice(start, match.index));
      start = ends.lastIndex;
    }
    buffer = buffer.slice(start);
  };
}

function errorDetail(data) {
  try {
    const body = JSON.parse(data);
    if (body && typeof body.detail === "string") return body.detail;
  } catch {
    // not JSON: the text itself is the reason
  }
  return data || "the answer failed";
}
