// The one place that talks HTTP to the manager: a typed openapi-fetch client generated from the
// manager's OpenAPI document, plus `call`/`listAll` for paginated lists, streams and the pages
// that type their results with the generated models (src/api/types.ts).
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type User = Schemas["UserOut"];
export type Project = Schemas["ProjectOut"];
export type Domain = Schemas["DomainOut"];
export type Member = Schemas["MemberOut"];
export type Token = Schemas["TokenOut"];
export type ResourceGroup = Schemas["ResourceGroupOut"];
export type WhoAmI = Schemas["WhoAmI"];

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** An API error with the server's stable code and its message in words. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | null = null,
    readonly details: unknown = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

const TOKEN_KEY = "berth.token";
let csrfToken: string | null = null;

export const credentials = {
  setCsrf(value: string | null | undefined) {
    csrfToken = value ?? null;
  },
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  setToken(value: string | null) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

function authHeaders(method: string): Record<string, string> {
  const headers: Record<string, string> = {};
  const token = credentials.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  else if (csrfToken && !["GET", "HEAD", "OPTIONS"].includes(method.toUpperCase()))
    headers["X-CSRF-Token"] = csrfToken;
  return headers;
}

const authMiddleware: Middleware = {
  onRequest({ request }) {
    for (const [k, v] of Object.entries(authHeaders(request.method))) request.headers.set(k, v);
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(authMiddleware);

export async function toApiError(response: Response, body?: unknown): Promise<ApiError> {
  let parsed = body;
  if (parsed === undefined) {
    const text = await response.text().catch(() => "");
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (parsed && typeof parsed === "object" && "message" in parsed) {
    const b = parsed as { code?: string; message: string; request_id?: string; details?: unknown };
    return new ApiError(response.status, b.code ?? "error", b.message, b.request_id ?? null, b.details);
  }
  const text = typeof parsed === "string" && parsed ? parsed.slice(0, 300) : response.statusText;
  return new ApiError(response.status, `http_${response.status}`, text || `HTTP ${response.status}`);
}

/** Unwrap an openapi-fetch result: the data, or an ApiError with the server's message. */
export async function unwrap<T>(
  pending: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let result;
  try {
    result = await pending;
  } catch (err) {
    throw new ApiError(0, "network_error", `The manager could not be reached (${String(err)}).`);
  }
  if (result.error !== undefined || !result.response.ok) {
    throw await toApiError(result.response, result.error);
  }
  return result.data as T;
}

/** A request to any manager path; `T` is one of the generated models. */
export async function call<T>(
  method: string,
  path: string,
  options: { body?: unknown; query?: Record<string, string | number | boolean | undefined | null> } = {},
): Promise<T> {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(options.query ?? {})) {
    if (v !== undefined && v !== null && v !== "") qs.set(k, String(v));
  }
  const url = qs.toString() ? `${path}?${qs}` : path;
  const headers: Record<string, string> = { Accept: "application/json", ...authHeaders(method) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (err) {
    throw new ApiError(0, "network_error", `The manager could not be reached (${String(err)}).`);
  }
  if (!response.ok) throw await toApiError(response);
  if (response.status === 204) return undefined as T;
  const type = response.headers.get("Content-Type") ?? "";
  return (type.includes("json") ? await response.json() : await response.text()) as T;
}

/** Every item of a paginated list (bounded, so a huge table cannot hang the page). */
export async function listAll<T>(
  path: string,
  query: Record<string, string | number | boolean | undefined> = {},
  maxItems = 2000,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<T> = await call<Page<T>>("GET", path, {
      query: { ...query, limit: 200, cursor: cursor ?? undefined },
    });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < maxItems);
  return items;
}

/** Open a streaming GET (logs with follow=true) and hand each decoded chunk to `onText`. */
export async function streamText(
  path: string,
  onText: (text: string) => void,
  signal: AbortSignal,
): Promise<void> {
  const response = await fetch(path, {
    headers: authHeaders("GET"),
    credentials: "same-origin",
    signal,
  });
  if (!response.ok) throw await toApiError(response);
  if (!response.body) {
    onText(await response.text());
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    onText(decoder.decode(value, { stream: true }));
  }
}

export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    return err.requestId ? `${err.message} (request ${err.requestId})` : err.message;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}
