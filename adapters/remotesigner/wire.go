// Package remotesigner runs a CA backend as its own service (`samplero signer`, the seed's
// cert-signer) and is the `remote` issuer backend that talks to it.
//
// The server (Server) publishes a ports.CAKeyStore over HTTPS: GET /healthz, GET /v1/intermediates,
// GET /v1/root and POST /v1/sign, which signs a digest with an intermediate's key. Every call but
// /healthz carries a bearer token and an HMAC-SHA-256 over "<timestamp>.<nonce>.<raw body>" with a
// 60 s window and a nonce cache; mutual TLS with the signer's own client CA may be required on top.
// The client (Client) implements ports.CAKeyStore and ports.CAShares against such a server: its
// Signer returns a crypto.Signer whose Sign is a POST /v1/sign, so intermediate keys never leave
// the signer's host.
package remotesigner

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// The authentication headers of every call but /healthz.
const (
	HeaderTimestamp = "X-Signer-Timestamp"
	HeaderNonce     = "X-Signer-Nonce"
	HeaderSignature = "X-Signer-Signature"
)

// DefaultWindow is how far a request's timestamp may be from the server's clock, either way.
const DefaultWindow = 60 * time.Second

// maxBody bounds every request body: a sign request is a few hundred bytes.
const maxBody = 64 << 10

// MinSecretLen is the shortest token and HMAC secret accepted, on both sides.
const MinSecretLen = 32

// CodeSignerUnavailable is the code of every failure to reach or use the remote signer.
const CodeSignerUnavailable = "CA_SIGNER_UNAVAILABLE"

// Paths served.
const (
	pathHealth        = "/healthz"
	pathIntermediates = "/v1/intermediates"
	pathRoot          = "/v1/root"
	pathSign          = "/v1/sign"
)

// intermediateDTO is one intermediate of GET /v1/intermediates.
type intermediateDTO struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Share is the canary share in percent (0 when not a canary).
	Share int `json:"share,omitempty"`
	// Certificate is the intermediate's certificate, PEM.
	Certificate string `json:"certificate"`
}

type intermediatesResponse struct {
	Intermediates []intermediateDTO `json:"intermediates"`
}

type rootResponse struct {
	Certificate string `json:"certificate"` // PEM
}

// signRequest is the body of POST /v1/sign.
type signRequest struct {
	IntermediateID string `json:"intermediate_id"`
	Digest         string `json:"digest"` // standard base64 with padding
	Hash           string `json:"hash"`   // SHA-256 or SHA-384
}

type signResponse struct {
	Signature string `json:"signature"` // standard base64 with padding; ASN.1 for ECDSA
}

// errorResponse is every error body. Error is a stable lower_snake code; the reason of an
// authentication failure is logged, never sent.
type errorResponse struct {
	Error string `json:"error"`
}

// hashes are the digests the signer accepts, by wire name.
var hashes = map[string]crypto.Hash{"SHA-256": crypto.SHA256, "SHA-384": crypto.SHA384}

func hashName(h crypto.Hash) (string, bool) {
	for name, v := range hashes {
		if v == h {
			return name, true
		}
	}
	return "", false
}

// mac is HMAC-SHA-256(secret, "<timestamp>.<nonce>.<body>").
func mac(secret []byte, timestamp, nonce string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write([]byte(nonce))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// macHex is mac in lower-case hex, as X-Signer-Signature carries it.
func macHex(secret []byte, timestamp, nonce string, body []byte) string {
	return hex.EncodeToString(mac(secret, timestamp, nonce, body))
}
