// First, before any dependency loads: a readable error on a Node.js older than package.json's engines.
import "./node-version-check";

export { PodIdentityCredential } from "./pod-identity-credential";
export { DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS } from "./pod-identity-credential-options";
export type { PodIdentityCredentialOptions, PodIdentityFirstContactOptions, PodIdentityRetryOptions } from "./pod-identity-credential-options";
export {
  PodIdentityUnavailableError,
  PodIdentityAuthenticationError,
  PodIdentityAbortError,
  isPodIdentityError,
} from "./errors";
export type {
  PodIdentityError,
  PodIdentityErrorCode,
  PodIdentityUnavailableCode,
  PodIdentityAuthenticationCode,
  OAuthErrorBody,
  RetryWithin,
} from "./errors";
export { DIAGNOSTICS_CHANNELS } from "./diagnostics";
export type { TokenAcquireEvent, TokenRefreshEvent, TokenRetryEvent, TokenErrorEvent } from "./diagnostics";
export { ERROR_CODE_HINTS, NMI_UNAVAILABLE_CODES, hintForErrorCode } from "./nmi-error-codes";
export { IMDS_API_VERSION, IMDS_TOKEN_PATH, NMI_VERSION_HEADER } from "./imds-client";
export { scopeToResource } from "./scopes";
