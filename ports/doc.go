// Package ports holds the interfaces between the cores and the adapters: the driving ports that the
// HTTP adapters and workflows call (Licensing, …) and the driven ports that the cores call
// (repositories, CertificateIssuer, Mailer, Processes, Clock, Tx, …). Each method documents what it
// guarantees; errors are *errs.Error with the kinds and codes named in the doc.
package ports
