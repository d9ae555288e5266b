package license

// Stable error codes of the licensing context (PROTOCOL.md sections 2 and 6). They live in the
// aggregate package, not in the service, so that the HTTP adapters (which may import aggregates but
// never core services) and the tests can refer to them.
const (
	CodeLicenseNotFound                    = "LICENSE_NOT_FOUND"                     // errs.NotFound
	CodeLicenseRevoked                     = "LICENSE_REVOKED"                       // errs.Forbidden
	CodeLicenseSuspended                   = "LICENSE_SUSPENDED"                     // errs.Forbidden
	CodeLicenseExpired                     = "LICENSE_EXPIRED"                       // errs.Forbidden
	CodeActivationLimitExceeded            = "ACTIVATION_LIMIT_EXCEEDED"             // errs.Conflict
	CodeFirstActivationPendingConfirmation = "FIRST_ACTIVATION_PENDING_CONFIRMATION" // errs.Conflict
	CodeProductMismatch                    = "PRODUCT_MISMATCH"                      // errs.Invalid
	CodeInvalidCSR                         = "INVALID_CSR"                           // errs.Invalid
	CodeUnknownKey                         = "UNKNOWN_KEY"                           // errs.Unauthenticated
	CodeClaimNotFound                      = "CLAIM_NOT_FOUND"                       // errs.NotFound
	CodeClaimRejected                      = "CLAIM_REJECTED"                        // errs.Gone
	CodeClaimExpired                       = "CLAIM_EXPIRED"                         // errs.Gone
	CodeCertificateUnknown                 = "CERTIFICATE_UNKNOWN"                   // errs.Forbidden
	CodeActivationRevoked                  = "ACTIVATION_REVOKED"                    // errs.Forbidden
	CodeCertificateRevoked                 = "CERTIFICATE_REVOKED"                   // errs.Forbidden
	CodeKeyMismatch                        = "KEY_MISMATCH"                          // errs.Forbidden
	// CodeActivationNotFound answers an owner's call naming a device that is not one of theirs.
	CodeActivationNotFound = "ACTIVATION_NOT_FOUND" // errs.NotFound

	// CodeActivationExists is the repositories' code for a second active activation of one device
	// on one license (the unique index behind the license row lock).
	CodeActivationExists = "ACTIVATION_EXISTS" // errs.Conflict
	// CodeProductNotFound answers admin calls naming a product that does not exist.
	CodeProductNotFound = "PRODUCT_NOT_FOUND" // errs.NotFound
)
