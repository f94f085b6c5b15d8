/**
 * What each `error` code an IMDS-compatible endpoint may answer means and what fixes it. Shared by the
 * credential's error messages and `podidentity doctor`. Decisions are made on these codes, never on
 * `error_description` text (the IMDS docs warn against branching on it).
 */
export interface ErrorCodeHint {
  /** One line: the likely cause and its fix. */
  hint: string;
}

/** NMI's own 403 refusals: this pod has no identity to use, so the credential is unavailable (no retry). */
export const NMI_UNAVAILABLE_CODES: ReadonlySet<string> = new Set([
  "podidentity_host_network",
  "podidentity_no_binding",
  "podidentity_not_bound",
  // ARM refused the assignment (or, in managed mode, IMDS never learned the identity): waiting will not fix it.
  "podidentity_assignment_failed",
]);

export const ERROR_CODE_HINTS: Readonly<Record<string, ErrorCodeHint>> = {
  podidentity_no_binding: {
    hint:
      "no AzureIdentityBinding selects this pod: check the pod's aadpodidbinding label matches a binding's selector in the same namespace",
  },
  podidentity_not_bound: {
    hint:
      "the pod asked for an identity (client_id / msi_res_id / object_id) it is not bound to: use the bound identity's ID or add a binding for this one",
  },
  podidentity_host_network: {
    hint:
      "hostNetwork pods and the node itself are not served by NMI: run the pod without hostNetwork, or use workload identity",
  },
  podidentity_pending: {
    hint:
      "a binding selects the pod but MIC has not finished assigning the identity: wait and retry; if it persists, check MIC's logs and the AzureAssignedIdentity status",
  },
  podidentity_assignment_failed: {
    hint:
      "the identity cannot be assigned to the node (the message carries ARM's reason: an identity that does not exist, a wrong resourceID, or MIC lacking permission to assign it): fix the AzureIdentity or the identity in Azure; MIC retries at once when the AzureIdentity is edited",
  },
  podidentity_pod_unknown: {
    hint: "NMI does not know this pod's IP yet (just started?): retry; if it persists, check NMI runs on this node and can list pods",
  },
  podidentity_upstream_unavailable: {
    hint: "NMI could not reach the node's IMDS or Entra ID (or was throttled): retry; check the node's egress and IMDS health",
  },
  invalid_request: {
    // IMDS uses this one code both for "Identity not found" and for malformed requests, so the hint names both.
    hint:
      "the endpoint refused the request: if it says \"Identity not found\", the requested identity is not (yet) on this node's VM/VMSS (check clientId/resourceId and that MIC assigned it); otherwise the Metadata: true header or resource was missing",
  },
  bad_request_102: {
    hint: "IMDS did not see the Metadata: true header: check no proxy or sidecar strips it",
  },
  invalid_resource: {
    hint: "Entra ID does not know the requested resource (AADSTS50001): check the scope, e.g. https://vault.azure.net/.default",
  },
  unknown_source: {
    hint: "IMDS does not accept requests from this source: the request must come from the VM/node itself, without X-Forwarded-For",
  },
};

/** The one-line hint for a code, if known. */
export function hintForErrorCode(code: string | undefined): string | undefined {
  return code === undefined ? undefined : ERROR_CODE_HINTS[code]?.hint;
}
