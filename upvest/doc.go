// Package upvest is the relay's client for the Upvest Investment API.
//
// Every request is signed with HTTP Message Signatures draft 15 (quoted
// signature base, ECDSA hashed with SHA-512 or Ed25519) by a
// SigningTransport built on package httpsig, the same code that verifies
// Upvest's webhooks. OAuth 2 client credentials come from
// golang.org/x/oauth2/clientcredentials; the token call goes through the
// signing transport too (signed, without authorization), and API calls go
// through an oauth2.Transport layered over the signing transport so that the
// bearer token is set before the request is signed and is therefore covered.
//
// Client wraps the webhook subscription endpoints (list with paging, get,
// create, update, delete, test) and exposes the authenticated, signed
// *http.Client for fetching /auth/verify_keys. Every call has a timeout.
// Failures carry the package's sentinel errors: an HTTP error answer is an
// *APIError that matches ErrNotFound, ErrThrottled, ErrUnauthorized or
// ErrUnavailable with errors.Is, and a timeout matches
// context.DeadlineExceeded. Secrets (client secret, tokens, private keys,
// signatures) never appear in errors or logs.
package upvest
