// Package httpsig is the one implementation of HTTP Message Signatures in
// the project, used in both directions: verify checks what Upvest sends, the
// Upvest client signs what the relay sends, and the emulator does both the
// other way round.
//
// It covers exactly what Upvest puts on the wire (see docs/upvest.md):
//   - Signature-Input / Signature dictionaries (RFC 8941 structured fields,
//     the subset RFC 9421 uses: inner lists of strings with parameters, and
//     byte sequences);
//   - the signature base in two styles: Quoted ("@method": POST, RFC 9421 and
//     Upvest's draft-15) and Unquoted (@method: POST, what Upvest's draft-06
//     signer writes);
//   - ECDSA hashed with SHA-512 whatever the curve, ASN.1 DER on the wire with
//     raw r‖s accepted when verifying, and Ed25519;
//   - Digest (SHA-256=, SHA-512=) and Content-Digest (sha-256=:…:,
//     sha-512=:…:) of the raw body.
//
// Everything here is pure and safe for concurrent use.
package httpsig
