package relay

import (
	"log"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// Timeouts of the servers NewServer builds. WriteTimeout covers reading
// the body, verifying it and waiting for the PubAcks, so it is well above
// ReadTimeout plus the handler's ack timeout.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 60 * time.Second
	WriteTimeout      = 90 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// NewServer returns an *http.Server serving h on addr with the timeouts
// above and its own errors logged on log.
//
// Shutdown: the server's Shutdown(ctx) stops accepting, then waits for the
// requests in flight; the webhook handler returns only once its package's
// PubAcks are in (or its ack timeout passed), so a completed Shutdown means
// every package accepted so far was answered. Request contexts are not
// cancelled by Shutdown.
func NewServer(addr string, h http.Handler, log zerolog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          stdLogger(log),
	}
}

func stdLogger(l zerolog.Logger) *log.Logger {
	return log.New(l.With().Str("component", "http").Logger(), "", 0)
}
