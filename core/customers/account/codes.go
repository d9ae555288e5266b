package account

// Stable error codes of the customers context. They live in the aggregate package, not in the
// service, so that the HTTP adapters (which may import aggregates but never core services) and the
// repositories can use them.
const (
	// CodeInvalidEmail answers an address that is not a plausible mailbox.
	CodeInvalidEmail = "INVALID_EMAIL" // errs.Invalid
	// CodeSignInLinkInvalid answers a sign-in token that is unknown, used or expired, without
	// saying which (ports.SignInLinkRepo.Use).
	CodeSignInLinkInvalid = "SIGN_IN_LINK_INVALID" // errs.Unauthenticated
	// CodeInvalidCredentials answers a failed password sign-in: wrong password, unknown address
	// and account without a password alike.
	CodeInvalidCredentials = "INVALID_CREDENTIALS" // errs.Unauthenticated
	// CodeSessionInvalid answers a session token that is unknown, revoked or expired.
	CodeSessionInvalid = "SESSION_INVALID" // errs.Unauthenticated
	// CodePasswordTooShort and CodePasswordTooLong answer SetPassword outside the length policy.
	CodePasswordTooShort = "PASSWORD_TOO_SHORT" // errs.Invalid
	CodePasswordTooLong  = "PASSWORD_TOO_LONG"  // errs.Invalid
	// CodePasswordInvalid answers a password that is not valid UTF-8 or contains control characters.
	CodePasswordInvalid = "PASSWORD_INVALID" // errs.Invalid
	// CodeSessionKindInvalid answers a session kind other than cookie or bearer.
	CodeSessionKindInvalid = "SESSION_KIND_INVALID" // errs.Invalid
	// CodeAccountNotFound answers a call naming an account that does not exist.
	CodeAccountNotFound = "ACCOUNT_NOT_FOUND" // errs.NotFound
)
