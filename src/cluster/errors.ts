/**
 * Turning Kubernetes API failures into messages a person can act on: what happened, and what
 * to try. Every API call in src/cluster goes through `kubeCall()` so that a 403 names the verb
 * and resource that is missing, a 404 names the object, and a dead connection says how to
 * fall back to the local target.
 */
import { ApiException } from '@kubernetes/client-node';
import { InterruptedError, UserError } from '../base/errors.js';

/** A user-fixable cluster failure (exit 1). The CLI prints message + "Try:" line. */
export class ClusterError extends UserError {
  constructor(
    message: string,
    tryMessage?: string,
    readonly code?: number,
    readonly reason?: string,
  ) {
    super(message, tryMessage);
    this.name = 'ClusterError';
  }
}

/**
 * Bad input to a cluster function (an unknown log pattern, an invalid regex, an unknown router
 * mode). `option` names the input, not a CLI flag: the CLI maps it to a usage error (exit 2).
 */
export class ClusterInputError extends Error {
  constructor(
    message: string,
    readonly option: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'ClusterInputError';
  }
}

/** What a call was trying to do, for the error message: `list nodes`, `create dynamographdeployments "x" in namespace "dynamo"`. */
export interface CallDesc {
  readonly verb: string;
  /** Plural resource name, e.g. `nodes`, `dynamographdeployments.nvidia.com`. */
  readonly resource: string;
  readonly name?: string;
  readonly namespace?: string;
}

interface StatusBody {
  kind?: string;
  message?: string;
  reason?: string;
  details?: { causes?: Array<{ message?: string; field?: string }> };
}

export function parseStatus(body: unknown): StatusBody | undefined {
  if (!body) return undefined;
  if (typeof body === 'object') return body as StatusBody;
  if (typeof body === 'string') {
    try {
      const v = JSON.parse(body) as unknown;
      return v && typeof v === 'object' ? (v as StatusBody) : undefined;
    } catch {
      return { message: body.slice(0, 500) };
    }
  }
  return undefined;
}

function describeCall(d: CallDesc): string {
  return `${d.verb} ${d.resource}${d.name ? ` "${d.name}"` : ''}${d.namespace ? ` in namespace "${d.namespace}"` : ''}`;
}

/** The HTTP status of an error from client-node, or undefined for transport errors. */
function statusCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code;
  return undefined;
}

export function isNotFound(err: unknown): boolean {
  return statusCode(err) === 404 || (err instanceof ClusterError && err.code === 404);
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The errno-like code of a transport error (node-fetch wraps the socket error). */
export function networkCode(err: unknown): string | undefined {
  let e = err as { code?: unknown; errno?: unknown; cause?: unknown; type?: unknown; name?: unknown } | undefined;
  for (let i = 0; e && i < 4; i++) {
    if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return e.code;
    if (typeof e.errno === 'string' && NETWORK_CODES.has(e.errno)) return e.errno;
    if (e.type === 'request-timeout' || e.name === 'TimeoutError') return 'ETIMEDOUT';
    e = e.cause as typeof e;
  }
  const msg = String((err as Error)?.message ?? '');
  for (const c of NETWORK_CODES) if (msg.includes(c)) return c;
  if (/socket hang up|network timeout|timed? ?out/i.test(msg)) return 'ETIMEDOUT';
  return undefined;
}

export const LOCAL_HINT =
  'Check `kubectl cluster-info` and your VPN/kubeconfig, pick another context with --context, or run the lab without a cluster: `dynamo-lab start --target local`.';

/**
 * Convert any error thrown by a client-node call into a ClusterError with a message that says
 * what was attempted. `server` is the API server URL, for connection errors.
 */
export function explainApiError(err: unknown, d: CallDesc, server?: string): Error {
  if (err instanceof ClusterError) return err;
  if (err instanceof InterruptedError || (err as Error)?.name === 'AbortError') return err as Error;
  const code = statusCode(err);
  const what = describeCall(d);
  if (code === undefined) {
    const net = networkCode(err);
    if (net) {
      const where = server ? ` at ${server}` : '';
      if (net === 'ETIMEDOUT')
        return new ClusterError(
          `Timed out talking to the Kubernetes API server${where} (while trying to ${what}).`,
          LOCAL_HINT,
          undefined,
          net,
        );
      if (net.includes('CERT') || net.includes('SIGNED') || net.includes('LEAF')) {
        return new ClusterError(
          `TLS error from the Kubernetes API server${where}: ${net} (while trying to ${what}).`,
          "Check certificate-authority in your kubeconfig (or the cluster's insecure-skip-tls-verify setting).",
          undefined,
          net,
        );
      }
      return new ClusterError(
        `Cannot reach the Kubernetes API server${where}: ${net} (while trying to ${what}).`,
        LOCAL_HINT,
        undefined,
        net,
      );
    }
    const m = (err as Error)?.message ?? String(err);
    return new ClusterError(`Failed to ${what}: ${m}`, undefined);
  }
  const st = parseStatus(err instanceof ApiException ? err.body : (err as { body?: unknown }).body);
  const serverMsg = st?.message ? ` Server said: ${st.message}` : '';
  switch (code) {
    case 401:
      return new ClusterError(
        `The Kubernetes API server rejected your credentials (401 Unauthorized) when trying to ${what}.`,
        'Your token or client certificate is missing or expired: log in again (e.g. refresh the kubeconfig for this context) or pick another context with --context.',
        401,
        'Unauthorized',
      );
    case 403:
      return new ClusterError(
        `Permission denied (403 Forbidden): you may not ${what}.${serverMsg}`,
        `Ask a cluster admin for an RBAC role that allows "${d.verb}" on "${d.resource}"${d.namespace ? ` in namespace "${d.namespace}"` : ' (cluster-wide)'}; check with \`kubectl auth can-i ${d.verb} ${d.resource}${d.namespace ? ` -n ${d.namespace}` : ''}\`.`,
        403,
        'Forbidden',
      );
    case 404:
      return new ClusterError(
        `Not found (404) while trying to ${what}.${serverMsg}`,
        d.resource.includes('nvidia.com')
          ? 'The Dynamo CRDs may not be installed: run `dynamo-lab doctor`.'
          : `Check the name and the namespace (--namespace${d.namespace ? `, now "${d.namespace}"` : ''}).`,
        404,
        'NotFound',
      );
    case 409:
      return new ClusterError(
        `Conflict (409) while trying to ${what}.${serverMsg}`,
        'Another client changed or owns this object; run the command again, or remove the object first (`dynamo-lab cleanup`).',
        409,
        st?.reason ?? 'Conflict',
      );
    case 410:
      return new ClusterError(
        `The API server expired the watch (410 Gone) while trying to ${what}.`,
        'Run the command again.',
        410,
        'Expired',
      );
    case 422: {
      const causes = st?.details?.causes?.map((c) => `${c.field ? `${c.field}: ` : ''}${c.message ?? ''}`).join('; ');
      return new ClusterError(
        `The API server refused the object (422 Invalid) when trying to ${what}: ${causes || st?.message || 'invalid'}.`,
        undefined,
        422,
        'Invalid',
      );
    }
    case 429:
    case 503:
    case 504:
      return new ClusterError(
        `The API server is overloaded or unavailable (${code}) while trying to ${what}.${serverMsg}`,
        'Wait a little and run the command again.',
        code,
        'Unavailable',
      );
    default:
      return new ClusterError(`The API server answered ${code} when trying to ${what}.${serverMsg}`, undefined, code, st?.reason);
  }
}
