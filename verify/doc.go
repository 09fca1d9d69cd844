// Package verify checks the HTTP Message Signature on inbound Upvest webhook
// packages: the draft-06 base with unquoted component names that Upvest
// sends and the RFC 9421 quoted base, the Digest / Content-Digest of the raw
// body, the created/expires freshness window, and the ECDSA (P-521 and the
// other NIST curves, SHA-512, DER or raw r‖s) or Ed25519 signature under the
// key named by keyid, looked up in a JWKS that is loaded from a file or
// fetched from Upvest and refreshed in the background and on an unknown
// keyid.
//
// Wiring: build a KeySource, then a Verifier on it.
//
//	keys, err := verify.LoadKeysFile(path)            // RELAY_VERIFY_KEYS_FILE
//	// or, fetched through the Upvest API client (token + request signing):
//	keys, err := verify.NewRemoteKeys(url, httpClient, verify.WithLogger(log))
//	g.Go(func() error { return keys.Run(ctx) })        // the caller owns the loop
//	v, err := verify.New(keys, verify.WithMaxAge(maxAge), verify.WithClockSkew(skew))
//
// Both key sources report Ready for /readyz. RemoteKeys fetches with
// net/http directly rather than through jwk.Cache (jwx v2's cache, on
// httprc v1, cannot cancel a fetch, runs goroutines tied to the context
// given at construction, and adds a periodic refresh chain on every forced
// Refresh, so rate-limited refetches would multiply upstream calls); jwx
// still parses every key.
package verify
