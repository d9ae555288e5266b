// Package authority is the aggregate of Samplero's PKI: the intermediates of the CA hierarchy and
// their life cycle, certificate serials, and the device certificate profile (PROTOCOL.md sections 1
// and 7). It knows nothing of where keys live; the PKI service hands it certificates and signs what
// it builds with a signer from a ports.CAKeyStore.
package authority
