// Package samplero is the root of the Samplero license server: a hexagonal modular monolith whose
// cores (core/licensing, core/commerce, core/pki) sit behind the interfaces in ports, driven by the
// adapters and orchestrated by the Temporal workflows under workflows/. The binary is cmd/samplero.
//
// The package itself holds no code. Its tests guard the repository's promises that the compiler
// cannot: the import rules of ARCHITECTURE.md ("Who may import whom") and the copy of the device
// protocol under docs/.
package samplero
