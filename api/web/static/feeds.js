// The dashboard's live feeds, each reconnecting by itself and showing its state in the
// header: the price stream (SSE) and topics on the WebSocket (signals, job updates...).
import { feedState, withToken } from "./app.js";

const SOCKET_RETRY_MS = [500, 1000, 2000, 5000, 10000];
const STREAM_RETRY_MS = [1000, 2000, 5000, 10000]; // after the browser gives up on a stream

/**
 * WebSocket topics. `since()` (optional) is asked on every (re)connect, so a view resumes
 * from the last message it kept; `onMessage(type, data)` gets each topic message.
 */
export function topicFeed({ name, topics, since, onMessage, onLive }) {
  let socket = null;
  let retry = 0;
  let timer = null;
  let stopped = false;

  function connect() {
    feedState(name, retry ? "reconnecting" : "connecting");
    const url = new URL(withToken("/ws"), location.origin);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      const request = { action: "subscribe", topics };
      const from = since && since();
      if (from) request.since = from;
      socket.send(JSON.stringify(request));
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "subscribed") {
        retry = 0;
        feedState(name, "live");
        if (onLive) onLive();
      } else if (message.type === "error") {
        feedState(name, "reconnecting");
      } else if (topics.includes(message.type)) {
        onMessage(message.type, message.data);
      }
    });
    socket.addEventListener("close", () => {
      if (stopped) return;
      feedState(name, "reconnecting");
      timer = setTimeout(connect, backoff(SOCKET_RETRY_MS, retry++));
    });
  }

  connect();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      if (socket) socket.close();
      feedState(name, "off");
    },
  };
}

/**
 * The price stream: `onPrices(prices, fresh)` with the snapshot first (fresh = false), then
 * each batch of changes. The browser retries a dropped stream itself (the server's `retry:`);
 * a stream it gives up on is reopened with backoff.
 */
export function priceFeed({ onPrices, name = "prices" }) {
  let source = null;
  let retry = 0;
  let timer = null;
  let stopped = false;

  function connect() {
    feedState(name, retry ? "reconnecting" : "connecting");
    source = new EventSource(withToken("/api/stream/prices"));
    source.addEventListener("open", () => {
      retry = 0;
      feedState(name, "live");
    });
    source.addEventListener("snapshot", (event) => onPrices(JSON.parse(event.data), false));
    source.addEventListener("prices", (event) => onPrices(JSON.parse(event.data), true));
    source.addEventListener("error", () => {
      if (stopped) return;
      feedState(name, "reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        timer = setTimeout(connect, backoff(STREAM_RETRY_MS, retry++));
      }
    });
  }

  connect();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      if (source) source.close();
      feedState(name, "off");
    },
  };
}

/** The wait before reconnect attempt `retry` (0-based): the schedule's last value repeats. */
function backoff(schedule, retry) {
  return schedule[Math.min(retry, schedule.length - 1)];
}
