package upvest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. An *APIError matches the first four with errors.Is
// according to its status code.
var (
	// ErrNotFound: Upvest answered 404.
	ErrNotFound = errors.New("upvest: not found")
	// ErrThrottled: Upvest answered 429; back off (see APIError.RetryAfter).
	ErrThrottled = errors.New("upvest: throttled")
	// ErrUnauthorized: Upvest answered 401 or 403 (bad credentials, bad
	// signature, or a missing scope).
	ErrUnauthorized = errors.New("upvest: unauthorized")
	// ErrUnavailable: Upvest answered with a 5xx status; retry later.
	ErrUnavailable = errors.New("upvest: unavailable")
	// ErrBadResponse: a 2xx answer could not be decoded, was too large, or
	// a listing did not make progress or did not end.
	ErrBadResponse = errors.New("upvest: unexpected response")
	// ErrInvalid: a constructor or method argument is invalid.
	ErrInvalid = errors.New("upvest: invalid argument")
	// ErrSigningKey: a signing key file cannot be used.
	ErrSigningKey = errors.New("upvest: unusable signing key")
	// ErrRequestTooLarge: a request body exceeds what the signing transport
	// buffers.
	ErrRequestTooLarge = errors.New("upvest: request body too large")
)

// APIError is a non-2xx answer from Upvest. The problem fields are filled
// from an application/problem+json (or any JSON object) body when there is
// one; a body that is not JSON is ignored, never copied into the error.
type APIError struct {
	Status    int    // HTTP status code
	Type      string // problem type URI
	Title     string
	Detail    string
	Instance  string
	RequestID string // upvest-request-id header, else the problem's request_id
	// RetryAfter is the Retry-After header (seconds or HTTP date) as a
	// duration from the time of the answer; 0 when absent.
	RetryAfter time.Duration

	retryAfterSet bool
}

// Error describes the answer without any request data or secrets.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("status ")
	b.WriteString(strconv.Itoa(e.Status))
	if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" " + t)
	}
	if e.Title != "" {
		b.WriteString(": " + e.Title)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id " + e.RequestID + ")")
	}
	if e.retryAfterSet {
		b.WriteString(" (retry after " + e.RetryAfter.String() + ")")
	}
	return b.String()
}

// Is reports whether the status matches one of ErrNotFound (404),
// ErrThrottled (429), ErrUnauthorized (401, 403) or ErrUnavailable (5xx).
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrThrottled:
		return e.Status == http.StatusTooManyRequests
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	case ErrUnavailable:
		return e.Status >= 500 && e.Status <= 599
	}
	return false
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// newAPIError builds an APIError from an answer's status, headers and
// (possibly truncated) body.
func newAPIError(status int, h http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{Status: status}
	var p struct {
		Type      string `json:"type"`
		Title     string `json:"title"`
		Detail    string `json:"detail"`
		Instance  string `json:"instance"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(body, &p) == nil {
		e.Type, e.Title, e.Detail, e.Instance, e.RequestID = p.Type, p.Title, p.Detail, p.Instance, p.RequestID
	}
	if id := h.Get("Upvest-Request-Id"); id != "" {
		e.RequestID = id
	}
	e.RetryAfter, e.retryAfterSet = parseRetryAfter(h.Get("Retry-After"), now)
	return e
}

// readAPIError consumes up to maxErrorBody bytes of resp's body.
func readAPIError(resp *http.Response, now time.Time) *APIError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return newAPIError(resp.StatusCode, resp.Header, body, now)
}

// maxRetryAfter caps absurd Retry-After values (and avoids overflow).
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date
// (a date in the past gives 0). ok is false when v is absent or malformed.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d = t.Sub(now)
	switch {
	case d < 0:
		d = 0
	case d > maxRetryAfter:
		d = maxRetryAfter
	}
	return d, true
}

// opError prefixes err with the call it came from.
func opError(method, path string, err error) error {
	return fmt.Errorf("upvest: %s %s: %w", method, path, err)
}
