// Hash routes: #/flows, #/flows/<flow>, #/flows/<flow>/runs/<run>, #/workers, #/queues,
// #/triggers. Segments are URI-encoded (flow names and run ids may hold ':' and '.').

export function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [top, flow, runs, run] = parts;
  if (!top || top === "flows") {
    if (flow && runs === "runs" && run) return { page: "run", flow, run };
    if (flow) return { page: "flow", flow };
    return { page: "flows" };
  }
  if (["workers", "queues", "triggers"].includes(top)) return { page: top };
  return { page: "notfound", path: hash };
}

const e = encodeURIComponent;
export const hrefFlows = () => "#/flows";
export const hrefFlow = (flow) => `#/flows/${e(flow)}`;
export const hrefRun = (flow, run) => `#/flows/${e(flow)}/runs/${e(run)}`;
