// readProblem returns the RFC 9457 problem details of an error response, or
// an empty object when the body is not one (a proxy's HTML page, say).
export async function readProblem(resp) {
  const type = resp.headers.get("Content-Type") || "";
  if (!/^application\/(problem\+)?json\b/i.test(type)) return {};
  try {
    const p = await resp.json();
    return p && typeof p === "object" ? p : {};
  } catch {
    return {};
  }
}
