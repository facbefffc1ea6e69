// The lifecycle feed of every run (GET /api/_events/stream), shared by the pages that
// keep counters live. It starts from "now" on the server's clock, so opening a page does
// not replay the capped feed's backlog.

import { serverNowMs } from "../api.js";
import { openStream } from "../live.js";

export function watchFeed(onEvent, onState) {
  const after = `${Math.max(0, Math.floor(serverNowMs()) - 2000)}-0`;
  return openStream(`/api/_events/stream?after=${after}`, { onEvent, onState });
}
