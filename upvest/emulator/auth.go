package emulator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/upvest-relay/upvest-relay/httpsig"
)

// Scopes the webhook API checks.
const (
	scopeRead  = "webhooks:read"
	scopeAdmin = "webhooks:admin"
)

// clockSkew is how far in the future a request signature's created may be.
const clockSkew = 5 * time.Second

// Tenant is one API client of the emulator: what a relay needs to call it.
type Tenant struct {
	ClientID     string
	ClientSecret string
	// KeyID is the key id to send as the signature's keyid
	// (RELAY_UPVEST_SIGNING_KEY_ID).
	KeyID string
	// Key is the tenant's private signing key: *ecdsa.PrivateKey (P-521)
	// or ed25519.PrivateKey. It is nil for tenants added with AddTenant.
	Key crypto.Signer
	// Scopes the tenant may request tokens for.
	Scopes []string
}

// KeyPEM encodes Key for RELAY_UPVEST_SIGNING_KEY_FILE: SEC1 "EC PRIVATE
// KEY" for ECDSA (the form Upvest's own tool reads), PKCS#8 "PRIVATE KEY"
// for Ed25519.
func (t Tenant) KeyPEM() ([]byte, error) {
	switch k := t.Key.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("emulator: encoding key: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	case ed25519.PrivateKey:
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("emulator: encoding key: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	case nil:
		return nil, errors.New("emulator: tenant has no private key")
	default:
		return nil, fmt.Errorf("emulator: unsupported key type %T", t.Key)
	}
}

// TenantOption configures a tenant made by NewTenant or AddTenant.
type TenantOption func(*tenantConfig)

type tenantConfig struct {
	scopes  []string
	ed25519 bool
}

// WithScopes sets the scopes the tenant may request (default
// "webhooks:read" and "webhooks:admin"). Asking for any other scope at
// /auth/token is refused with 401, as Upvest does.
func WithScopes(scopes ...string) TenantOption {
	return func(c *tenantConfig) { c.scopes = slices.Clone(scopes) }
}

// WithEd25519 makes NewTenant generate an Ed25519 key instead of P-521.
func WithEd25519() TenantOption { return func(c *tenantConfig) { c.ed25519 = true } }

type tenant struct {
	clientID string
	secret   string
	keyID    string
	pub      crypto.PublicKey
	scopes   []string
}

type token struct {
	clientID string
	scopes   []string
	expires  time.Time
}

// AuthFailure records one request the emulator refused with 401.
type AuthFailure struct {
	Time     time.Time
	Method   string
	Path     string
	ClientID string // the upvest-client-id header as sent
	// Signature is true for request-signature and header problems, false
	// for credentials and bearer-token problems.
	Signature bool
	Detail    string
}

// NewTenant registers a tenant with a fresh client id, client secret and
// P-521 signing key (see WithEd25519) and returns it.
func (s *Server) NewTenant(opts ...TenantOption) (Tenant, error) {
	cfg := tenantConfig{scopes: []string{scopeRead, scopeAdmin}}
	for _, o := range opts {
		o(&cfg)
	}
	var key crypto.Signer
	var err error
	if cfg.ed25519 {
		_, key, err = ed25519.GenerateKey(rand.Reader)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("emulator: generating key: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return Tenant{}, fmt.Errorf("emulator: generating secret: %w", err)
	}
	t := Tenant{
		ClientID:     uuid.NewString(),
		ClientSecret: base64.RawURLEncoding.EncodeToString(secret),
		KeyID:        uuid.NewString(),
		Key:          key,
		Scopes:       cfg.scopes,
	}
	if err := s.AddTenant(t.ClientID, t.ClientSecret, key.Public(), t.KeyID, WithScopes(cfg.scopes...)); err != nil {
		return Tenant{}, err
	}
	return t, nil
}

// AddTenant registers a tenant whose key was made elsewhere. pub must be an
// *ecdsa.PublicKey or an ed25519.PublicKey; keyID is the keyid its request
// signatures carry.
func (s *Server) AddTenant(clientID, secret string, pub crypto.PublicKey, keyID string, opts ...TenantOption) error {
	if clientID == "" || secret == "" || keyID == "" {
		return errors.New("emulator: tenant needs a client id, a secret and a key id")
	}
	switch pub.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return fmt.Errorf("emulator: unsupported public key type %T", pub)
	}
	cfg := tenantConfig{scopes: []string{scopeRead, scopeAdmin}}
	for _, o := range opts {
		o(&cfg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tenants[clientID]; ok {
		return fmt.Errorf("emulator: tenant %s already exists", clientID)
	}
	s.tenants[clientID] = &tenant{clientID: clientID, secret: secret, keyID: keyID, pub: pub, scopes: cfg.scopes}
	return nil
}

// SignatureFailures returns the requests refused for their request
// signature or Upvest headers, oldest first.
func (s *Server) SignatureFailures() []AuthFailure {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []AuthFailure
	for _, f := range s.failures {
		if f.Signature {
			out = append(out, f)
		}
	}
	return out
}

// AuthFailures returns every request refused with 401, oldest first.
func (s *Server) AuthFailures() []AuthFailure {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.failures)
}

// authenticate checks the request signature and, unless this is the token
// call, the bearer token and its scope. On failure it returns the answer.
func (s *Server) authenticate(r *http.Request, body []byte, isToken bool, scope string) (*tenant, result, bool) {
	t, detail := s.checkSignature(r, body, isToken)
	if detail != "" {
		s.recordFailure(r, true, detail)
		return nil, problemResult(http.StatusUnauthorized, "%s", detail), false
	}
	if isToken {
		return t, result{}, true
	}
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(tok) == "" {
		s.recordFailure(r, false, "authorization must be \"Bearer <access token>\"")
		return nil, problemResult(http.StatusUnauthorized, "authorization must be \"Bearer <access token>\""), false
	}
	s.mu.Lock()
	got, ok := s.tokens[strings.TrimSpace(tok)]
	s.mu.Unlock()
	switch {
	case !ok:
		detail = "unknown access token"
	case got.clientID != t.clientID:
		detail = "access token was issued to another client"
	case !s.now().Before(got.expires):
		detail = "access token expired"
	}
	if detail != "" {
		s.recordFailure(r, false, detail)
		return nil, problemResult(http.StatusUnauthorized, "%s", detail), false
	}
	if !slices.Contains(got.scopes, scope) {
		return nil, problemResult(http.StatusForbidden, "access token lacks scope %s", scope), false
	}
	return t, result{}, true
}

func (s *Server) recordFailure(r *http.Request, signature bool, detail string) {
	f := AuthFailure{
		Time:      s.now(),
		Method:    r.Method,
		Path:      r.URL.Path,
		ClientID:  r.Header.Get("Upvest-Client-Id"),
		Signature: signature,
		Detail:    detail,
	}
	s.cfg.log.Info().Str("method", f.Method).Str("path", f.Path).Str("client_id", f.ClientID).Str("detail", detail).Msg("emulator: unauthorised")
	s.mu.Lock()
	s.failures = append(s.failures, f)
	s.mu.Unlock()
}

// requiredComponents are the components an Upvest draft-15 request
// signature must cover.
func requiredComponents(r *http.Request, hasBody, isToken bool) []string {
	req := []string{"@method", "@path"}
	if r.URL.RawQuery != "" {
		req = append(req, "@query")
	}
	req = append(req, "accept")
	if !isToken {
		req = append(req, "authorization")
	}
	if hasBody {
		req = append(req, "content-length", "content-type", "content-digest")
	}
	if !isToken && (r.Method == http.MethodPost || r.Method == http.MethodPatch) {
		req = append(req, "idempotency-key")
	}
	return append(req, "upvest-client-id")
}

// checkSignature verifies the Upvest headers and the draft-15 request
// signature. It returns the tenant, or a detail for the 401 that tells the
// tenant's developer what is wrong.
func (s *Server) checkSignature(r *http.Request, body []byte, isToken bool) (*tenant, string) {
	clientID := r.Header.Get("Upvest-Client-Id")
	if clientID == "" {
		return nil, "missing upvest-client-id header"
	}
	s.mu.Lock()
	t := s.tenants[clientID]
	s.mu.Unlock()
	if t == nil {
		return nil, fmt.Sprintf("unknown upvest-client-id %q", clientID)
	}
	if v := r.Header.Get("Upvest-Api-Version"); v != "1" {
		return nil, fmt.Sprintf("upvest-api-version must be 1, got %q", v)
	}
	if v := r.Header.Get("Upvest-Signature-Version"); v != "15" {
		return nil, fmt.Sprintf("upvest-signature-version must be 15, got %q", v)
	}
	if !isToken && r.Header.Get("Authorization") == "" {
		return nil, "missing authorization header"
	}
	if !isToken && (r.Method == http.MethodPost || r.Method == http.MethodPatch) && r.Header.Get("Idempotency-Key") == "" {
		return nil, "missing idempotency-key header (required on POST and PATCH)"
	}
	input := strings.Join(r.Header.Values("Signature-Input"), ", ")
	if input == "" {
		return nil, "missing signature-input header"
	}
	members, err := httpsig.ParseSignatureInput(input)
	if err != nil {
		return nil, fmt.Sprintf("malformed signature-input: %v", err)
	}
	m := members[0]
	sigHeader := strings.Join(r.Header.Values("Signature"), ", ")
	if sigHeader == "" {
		return nil, "missing signature header"
	}
	sigs, err := httpsig.ParseSignature(sigHeader)
	if err != nil {
		return nil, fmt.Sprintf("malformed signature header: %v", err)
	}
	sig, ok := sigs[m.Label]
	if !ok {
		return nil, fmt.Sprintf("signature header has no %q member matching signature-input", m.Label)
	}
	for _, c := range requiredComponents(r, len(body) > 0, isToken) {
		if !slices.Contains(m.Components, c) {
			return nil, fmt.Sprintf("signature must cover %q (covered: %s)", c, strings.Join(m.Components, " "))
		}
	}
	p := m.Params
	switch {
	case p.KeyID == "":
		return nil, "signature-input has no keyid parameter"
	case p.KeyID != t.keyID:
		return nil, fmt.Sprintf("unknown keyid %q for this client", p.KeyID)
	case p.Created == 0:
		return nil, "signature-input has no created parameter"
	case p.Expires == 0:
		return nil, "signature-input has no expires parameter"
	case p.Nonce == "":
		return nil, "signature-input has no nonce parameter"
	}
	if life := p.Expires - p.Created; life < 10 || life > 60 {
		return nil, fmt.Sprintf("expires must be 10 to 60 seconds after created, got %d", life)
	}
	now := s.now()
	if time.Unix(p.Created, 0).After(now.Add(clockSkew)) {
		return nil, fmt.Sprintf("signature created %d is in the future (server time %d)", p.Created, now.Unix())
	}
	if now.Unix() > p.Expires {
		return nil, fmt.Sprintf("signature expired at %d (server time %d)", p.Expires, now.Unix())
	}
	if len(body) > 0 {
		if detail := checkContentDigest(r.Header, body); detail != "" {
			return nil, detail
		}
	}
	base, err := httpsig.Base(r, m.Components, m.Raw, httpsig.Quoted)
	if err != nil {
		return nil, fmt.Sprintf("cannot build signature base: %v", err)
	}
	if err := httpsig.VerifyBase(t.pub, base, sig); err != nil {
		return nil, "signature does not verify: expected a draft-15 base (quoted component names, " +
			"lines joined by \\n, last line \"@signature-params\": <signature-input value>) signed with the key of keyid " +
			"(ECDSA over SHA-512, ASN.1 DER, or Ed25519)"
	}
	return t, ""
}

func checkContentDigest(h http.Header, body []byte) string {
	v := strings.Join(h.Values("Content-Digest"), ", ")
	if v == "" {
		return "missing content-digest header (sha-512=:<base64>:)"
	}
	d, err := httpsig.ParseSignature(v) // a dictionary of byte sequences
	if err != nil {
		return fmt.Sprintf("malformed content-digest: %v", err)
	}
	got, ok := d["sha-512"]
	if !ok {
		return "content-digest must carry sha-512"
	}
	want := sha512.Sum512(body)
	if subtle.ConstantTimeCompare(got, want[:]) != 1 {
		return "content-digest does not match the body"
	}
	return ""
}

// handleToken is POST /auth/token: OAuth 2.0 client credentials.
func (s *Server) handleToken(c *call) result {
	mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return problemResult(http.StatusBadRequest, "content-type must be application/x-www-form-urlencoded")
	}
	form, err := url.ParseQuery(string(c.body))
	if err != nil {
		return problemResult(http.StatusBadRequest, "malformed form body: %v", err)
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		return problemResult(http.StatusBadRequest, "grant_type must be client_credentials, got %q", gt)
	}
	t := c.tenant
	if form.Get("client_secret") == "" && strings.HasPrefix(strings.ToLower(c.r.Header.Get("Authorization")), "basic ") {
		s.recordFailure(c.r, false, "client credentials sent as HTTP Basic")
		return problemResult(http.StatusUnauthorized, "send client_id and client_secret as form fields, not HTTP Basic authorization")
	}
	if form.Get("client_id") != t.clientID ||
		subtle.ConstantTimeCompare([]byte(form.Get("client_secret")), []byte(t.secret)) != 1 {
		s.recordFailure(c.r, false, "invalid client credentials")
		return problemResult(http.StatusUnauthorized, "invalid client credentials")
	}
	scopes := strings.Fields(form.Get("scope"))
	if len(scopes) == 0 {
		return problemResult(http.StatusBadRequest, "scope is required (space-separated, e.g. \"webhooks:read webhooks:admin\")")
	}
	for _, sc := range scopes {
		if !slices.Contains(t.scopes, sc) {
			s.recordFailure(c.r, false, "scope not configured: "+sc)
			return problemResult(http.StatusUnauthorized, "scope %q is not configured for this client", sc)
		}
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return problemResult(http.StatusInternalServerError, "generating token")
	}
	access := base64.RawURLEncoding.EncodeToString(raw)
	s.mu.Lock()
	s.pruneTokens()
	s.tokens[access] = &token{clientID: t.clientID, scopes: scopes, expires: s.now().Add(s.cfg.tokenLifetime)}
	s.mu.Unlock()
	return jsonResult(http.StatusOK, struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		TokenType   string `json:"token_type"`
		Scope       string `json:"scope"`
	}{access, int64(s.cfg.tokenLifetime / time.Second), "bearer", strings.Join(scopes, " ")})
}

// pruneTokens forgets tokens that expired more than a day ago (until then
// a request with one is told it expired). s.mu must be held.
func (s *Server) pruneTokens() {
	cutoff := s.now().Add(-24 * time.Hour)
	for k, t := range s.tokens {
		if t.expires.Before(cutoff) {
			delete(s.tokens, k)
		}
	}
}
