package relay

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/upvest-relay/upvest-relay/verify"
)

// Errors the handler answers with a non-2xx status; answer maps each to
// its status. Verifier errors arrive wrapped in ErrUnauthorized, keeping
// the verify sentinel for errors.Is.
var (
	ErrNotFound         = errors.New("relay: no such path")
	ErrMethodNotAllowed = errors.New("relay: method not allowed")
	ErrOverloaded       = errors.New("relay: too many packages in flight")
	ErrBodyTooLarge     = errors.New("relay: body too large")
	ErrBodyUnreadable   = errors.New("relay: body could not be read")
	ErrUnauthorized     = errors.New("relay: signature rejected")
	ErrUnavailable      = errors.New("relay: JetStream did not acknowledge every message")
	ErrNotReady         = errors.New("relay: not ready to store packages")
)

// retryAfterSeconds is the Retry-After of every 503.
const retryAfterSeconds = "5"

// problem is the answer to a failed request.
type problem struct {
	status int
	result string // relay_packages_total{result}
	reason string // relay_rejections_total{reason} and the problem type
	detail string
}

// answer is the one place an error becomes an HTTP answer.
func answer(err error) problem {
	switch {
	case errors.Is(err, verify.ErrKeysUnavailable):
		return problem{http.StatusServiceUnavailable, resultUnavailable, verify.Reason(err), "signature verification keys are unavailable; retry later"}
	case errors.Is(err, ErrUnauthorized):
		reason := verify.Reason(err)
		return problem{http.StatusUnauthorized, resultUnauthorized, reason, "signature rejected: " + reason}
	case errors.Is(err, ErrBodyTooLarge):
		return problem{http.StatusRequestEntityTooLarge, resultTooLarge, "body_too_large", "the body exceeds the size limit"}
	case errors.Is(err, ErrBodyUnreadable):
		return problem{http.StatusBadRequest, resultBadRequest, "body_unreadable", "the body could not be read"}
	case errors.Is(err, ErrOverloaded):
		return problem{http.StatusServiceUnavailable, resultOverloaded, "overloaded", "too many packages in flight; retry later"}
	case errors.Is(err, ErrNotReady):
		return problem{http.StatusServiceUnavailable, resultUnavailable, "not_ready", "the relay cannot store packages yet (" + notReadyCause(err) + "); retry later"}
	case errors.Is(err, ErrUnavailable):
		return problem{http.StatusServiceUnavailable, resultUnavailable, "publish_failed", "the events could not all be stored; retry later"}
	case errors.Is(err, ErrForbidden):
		return problem{http.StatusForbidden, resultForbidden, "source_not_allowed", "the source address is not allowed to deliver webhooks"}
	case errors.Is(err, ErrMethodNotAllowed):
		return problem{http.StatusMethodNotAllowed, resultMethodNotAllowed, "method_not_allowed", "only POST is allowed"}
	case errors.Is(err, ErrNotFound):
		return problem{http.StatusNotFound, resultNotFound, "not_found", "no such path"}
	default:
		return problem{http.StatusInternalServerError, resultInternal, "internal", "internal error"}
	}
}

// problemBody is an RFC 9457 problem detail.
type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// problemTypePrefix starts the type URI of every problem; the reason
// follows it.
const problemTypePrefix = "urn:upvest-relay:problem:"

func (p problem) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	switch p.status {
	case http.StatusMethodNotAllowed:
		h.Set("Allow", http.MethodPost)
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", retryAfterSeconds)
	}
	w.WriteHeader(p.status)
	_ = json.NewEncoder(w).Encode(problemBody{
		Type:   problemTypePrefix + p.reason,
		Title:  http.StatusText(p.status),
		Status: p.status,
		Detail: p.detail,
	})
}

// notReadyCause is the readiness gate's reason inside an ErrNotReady, for
// the problem detail: what is missing, never a secret.
func notReadyCause(err error) string {
	var c gateError
	if errors.As(err, &c) {
		return c.cause.Error()
	}
	return "starting"
}

// gateError carries the readiness gate's error inside an ErrNotReady.
type gateError struct{ cause error }

func (e gateError) Error() string { return e.cause.Error() }
func (e gateError) Unwrap() error { return e.cause }
