/** The version in every response's `x-podidentity-nmi` header; tsup replaces nothing, so it is kept in sync by hand. */
export const NMI_VERSION = "0.1.0";

/** The header that tells NMI's answers apart from the real IMDS's (docs/contract.md). */
export const NMI_VERSION_HEADER = "x-podidentity-nmi";
