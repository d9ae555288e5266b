// Package sdk is the root of the Samplero client SDK for plugin vendors. It uses the standard library
// only. See the samplero and httpsig packages.
package sdk
