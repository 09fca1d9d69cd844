package relay

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ErrForbidden: the request's source address is outside the allowed
// sources; answered 403 before anything of the request is read.
var ErrForbidden = errors.New("relay: source address not allowed")

// WithAllowedSources admits webhook requests only from these networks
// (default: any source). Upvest publishes the addresses it delivers from.
func WithAllowedSources(prefixes []netip.Prefix) Option {
	return func(h *Handler) { h.allowed = prefixes }
}

// WithTrustedProxies names the proxies whose X-Forwarded-For is believed:
// when the direct peer is one of them, the source is the right-most
// address in X-Forwarded-For that is not itself a trusted proxy.
func WithTrustedProxies(prefixes []netip.Prefix) Option {
	return func(h *Handler) { h.trusted = prefixes }
}

// source returns the address the request comes from, following
// X-Forwarded-For only through trusted proxies.
func (h *Handler) source(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	addr = addr.Unmap()
	if !contains(h.trusted, addr) {
		return addr, true
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false // a forged or broken chain proves nothing
		}
		addr = hop.Unmap()
		if !contains(h.trusted, addr) {
			return addr, true
		}
	}
	return addr, true
}

// allowedSource reports whether r may be served: always when no sources
// are configured.
func (h *Handler) allowedSource(r *http.Request) bool {
	if len(h.allowed) == 0 {
		return true
	}
	addr, ok := h.source(r)
	return ok && contains(h.allowed, addr)
}

func contains(prefixes []netip.Prefix, addr netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
