package httpsig

import "errors"

var (
	// ErrSyntax: a Signature, Signature-Input or digest header is malformed.
	ErrSyntax = errors.New("httpsig: malformed header")
	// ErrUnsupported: a construct the package does not implement (component
	// parameters, unknown derived components, unknown key types).
	ErrUnsupported = errors.New("httpsig: unsupported")
	// ErrMissingComponent: a covered component is absent from the request.
	ErrMissingComponent = errors.New("httpsig: covered component missing")
	// ErrVerification: the signature does not verify under the key.
	ErrVerification = errors.New("httpsig: signature verification failed")
	// ErrNoDigest: no digest of a supported algorithm is present.
	ErrNoDigest = errors.New("httpsig: no supported body digest")
	// ErrDigestMismatch: a digest does not match the body.
	ErrDigestMismatch = errors.New("httpsig: body digest mismatch")
)
