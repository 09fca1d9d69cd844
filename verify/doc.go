// Package verify checks the HTTP Message Signature on inbound Upvest webhook
// packages: the draft-06 base with unquoted component names that Upvest
// sends and the RFC 9421 quoted base, the Digest / Content-Digest of the raw
// body, the created/expires freshness window, and the ECDSA (P-521, SHA-512,
// DER or raw r‖s) signature under the key named by keyid, looked up in a JWKS
// that is loaded from a file or fetched from Upvest and refreshed in the
// background and on an unknown keyid.
package verify
