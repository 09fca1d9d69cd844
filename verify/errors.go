package verify

import "errors"

// Sentinel errors returned by Verifier.Verify, one per reason a request is
// refused. Callers test them with errors.Is; Reason maps them to a short
// label for metrics and problem bodies.
var (
	// ErrNoSignature: the request carries no Signature or Signature-Input.
	ErrNoSignature = errors.New("verify: no signature")
	// ErrMalformed: Signature or Signature-Input cannot be parsed, or the
	// signature label in one is missing from the other.
	ErrMalformed = errors.New("verify: malformed signature headers")
	// ErrMissingComponent: a component listed in Signature-Input is absent
	// from the request.
	ErrMissingComponent = errors.New("verify: covered component missing")
	// ErrNoDigest: the request has a body but no Digest/Content-Digest
	// covered by the signature.
	ErrNoDigest = errors.New("verify: body digest missing or not covered")
	// ErrWeakCoverage: the signature does not cover both @method and @path,
	// so it would not bind the request's method and target (a signature
	// without a covered body digest is ErrNoDigest).
	ErrWeakCoverage = errors.New("verify: signature does not cover @method and @path")
	// ErrDigestMismatch: the body does not match its digest header.
	ErrDigestMismatch = errors.New("verify: body digest mismatch")
	// ErrUnknownKey: no key with the signature's keyid, even after one
	// (rate-limited) refetch of the key set.
	ErrUnknownKey = errors.New("verify: unknown key id")
	// ErrBadSignature: the signature does not verify over the signature base.
	ErrBadSignature = errors.New("verify: signature does not verify")
	// ErrStale: created is older than the maximum age, or expires is past.
	ErrStale = errors.New("verify: signature too old or expired")
	// ErrFuture: created lies in the future beyond the allowed clock skew.
	ErrFuture = errors.New("verify: signature created in the future")
	// ErrKeysUnavailable: no key set could be loaded at all. It is a
	// transient condition (the caller should answer "retry later"), not a
	// verdict on the request.
	ErrKeysUnavailable = errors.New("verify: verification keys unavailable")
)

var reasons = []struct {
	err   error
	label string
}{
	{ErrNoSignature, "no_signature"},
	{ErrMalformed, "malformed_signature"},
	{ErrMissingComponent, "missing_component"},
	{ErrNoDigest, "no_digest"},
	{ErrWeakCoverage, "weak_coverage"},
	{ErrDigestMismatch, "digest_mismatch"},
	{ErrUnknownKey, "unknown_key"},
	{ErrBadSignature, "bad_signature"},
	{ErrStale, "stale_signature"},
	{ErrFuture, "future_signature"},
	{ErrKeysUnavailable, "keys_unavailable"},
}

// Reason returns a short, stable, secret-free label for err ("bad_signature",
// "unknown_key", ...), or "invalid_signature" for an error that wraps none of
// the sentinels.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "invalid_signature"
}
