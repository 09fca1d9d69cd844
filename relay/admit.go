package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/upvest-relay/upvest-relay/verify"
)

// HeadVerifier is a Verifier that can check a request from its head alone,
// before any of the body is read; *verify.Verifier is one. With it the
// handler admits a request in this order, so that a client that cannot
// prove it is Upvest never holds what a valid delivery needs:
//
//  1. the head: signature headers, coverage, freshness and key lookup
//     (CheckHead; no public-key operation, microseconds). A request that
//     fails is answered 401 at once, its body never read, its connection
//     closed;
//  2. the body, read against a byte budget shared by every request being
//     read and a deadline of its own, hashed as it arrives, while the
//     public-key operation (VerifySignature) runs beside it on one of a
//     bounded number of verification slots (one per core by default);
//  3. only a package whose signature and digest both hold takes one of the
//     in-flight publishing slots (WithMaxInFlight).
type HeadVerifier interface {
	CheckHead(ctx context.Context, r *http.Request) (*verify.Head, error)
}

// Defaults of the admission options.
const (
	DefaultReadBudget  = 128 << 20
	DefaultBodyTimeout = 10 * time.Second
	// minBodyRate is the slowest body the deadline allows for beyond
	// DefaultBodyTimeout: the deadline grows by a second per 256 KiB.
	minBodyRate = 256 << 10
	readChunk   = 32 << 10
	// maxPrealloc is the most of a declared Content-Length a body buffer
	// is sized for before the bytes arrive: Upvest's largest package.
	maxPrealloc = 1 << 20
)

// ErrBusy: the byte budget for reading bodies is spent; answered 503.
var ErrBusy = errors.New("relay: too many bodies being read")

// WithReadBudget bounds the body bytes buffered at once across every
// request still being read (default 128 MiB); a request that would exceed
// it is answered 503. Bytes count as they arrive, never from an
// unverified Content-Length.
func WithReadBudget(n int64) Option { return func(h *Handler) { h.readBudget = n } }

// WithBodyTimeout is the time a body gets to arrive (default 10 s), plus
// a second per 256 KiB it declares; a slower body is answered 400.
func WithBodyTimeout(d time.Duration) Option { return func(h *Handler) { h.bodyTimeout = d } }

// WithMaxVerifications bounds the public-key operations run at once
// (default GOMAXPROCS), so well-formed but wrong signatures can never take
// more than that many cores.
func WithMaxVerifications(n int) Option { return func(h *Handler) { h.maxVerify = n } }

// admission is the state the admission steps share.
type admission struct {
	budget    atomic.Int64 // bytes still free for bodies being read
	verifying chan struct{}
}

func newAdmission(budget int64, maxVerify int) *admission {
	if maxVerify <= 0 {
		maxVerify = runtime.GOMAXPROCS(0)
	}
	a := &admission{verifying: make(chan struct{}, maxVerify)}
	a.budget.Store(budget)
	return a
}

// budgetReader reads r while holding bytes of the shared budget for what
// it has read; release returns them.
type budgetReader struct {
	r    io.Reader
	a    *admission
	held int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if len(p) > readChunk {
		p = p[:readChunk]
	}
	if b.a.budget.Add(-int64(len(p))) < 0 {
		b.a.budget.Add(int64(len(p)))
		return 0, ErrBusy
	}
	n, err := b.r.Read(p)
	b.a.budget.Add(int64(len(p) - n))
	b.held += int64(n)
	return n, err
}

func (b *budgetReader) release() { b.a.budget.Add(b.held); b.held = 0 }

// readVerified reads the body of a request whose head passed CheckHead,
// hashing it as it arrives while the signature is verified beside it. It
// returns the body once it has arrived whole and matches its digest, and
// may return before the signature's verdict: verified waits for it (nil
// when the signature holds), so that the caller can parse the body
// meanwhile. release gives back the budget the body holds and must be
// called when the body is no longer needed.
func (h *Handler) readVerified(w http.ResponseWriter, r *http.Request, head *verify.Head) (body []byte, verified func() error, release func(), err error) {
	sig := make(chan error, 1)
	go func() {
		select {
		case h.admit.verifying <- struct{}{}:
		case <-r.Context().Done():
			sig <- r.Context().Err()
			return
		}
		defer func() { <-h.admit.verifying }()
		sig <- head.VerifySignature()
	}()
	verdict := func() error {
		serr := <-sig
		switch {
		case serr == nil:
			return nil
		case errors.Is(serr, context.Canceled) || errors.Is(serr, context.DeadlineExceeded):
			return fmt.Errorf("%w: %w", ErrBodyUnreadable, serr)
		default:
			return fmt.Errorf("%w: %w", ErrUnauthorized, serr)
		}
	}
	digest := head.Body()
	body, release, err = h.readBody(w, r, digest)
	if err == nil {
		err = digest.Check()
		if err != nil {
			release()
			err = fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
	}
	if err != nil {
		// A signature that fails says more than what became of the body.
		if serr := verdict(); serr != nil {
			err = serr
		}
		return nil, nil, func() {}, err
	}
	return body, verdict, release, nil
}

// readBody reads the whole body within its deadline and the shared budget,
// writing it to sink as well when sink is not nil, and refuses more than
// maxBody bytes.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, sink io.Writer) ([]byte, func(), error) {
	if r.ContentLength > h.maxBody {
		return nil, func() {}, fmt.Errorf("%w: Content-Length %d > %d", ErrBodyTooLarge, r.ContentLength, h.maxBody)
	}
	deadline := h.bodyTimeout
	if r.ContentLength > 0 {
		deadline += time.Duration(r.ContentLength/minBodyRate) * time.Second
	}
	// Not every ResponseWriter supports deadlines (httptest's recorder):
	// the server's ReadTimeout still bounds the body then.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(deadline))

	br := &budgetReader{r: http.MaxBytesReader(w, r.Body, h.maxBody), a: h.admit}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		// Room for the declared length (trusted up to Upvest's largest
		// package) and for the read that finds the end: ReadFrom wants
		// bytes.MinRead free before each read and would otherwise double
		// the buffer for that last, empty read.
		buf.Grow(int(min(r.ContentLength, maxPrealloc)) + bytes.MinRead)
	}
	var src io.Reader = br
	if sink != nil {
		src = io.TeeReader(br, sink)
	}
	_, err := buf.ReadFrom(src)
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return buf.Bytes(), br.release, nil
	case errors.As(err, &tooLarge):
		err = fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, h.maxBody)
	case errors.Is(err, ErrBusy):
		err = fmt.Errorf("%w: %w", ErrOverloaded, err)
	default:
		err = fmt.Errorf("%w: %w", ErrBodyUnreadable, err)
	}
	br.release()
	return nil, func() {}, err
}
