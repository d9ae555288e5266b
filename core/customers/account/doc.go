// Package account holds the rules of the customers context that need no storage: how an e-mail
// address is normalised and checked, what a password must be, the argon2id PHC string format,
// sign-in and session tokens (random, shown once, stored only as SHA-256), their lifetimes and the
// stable error codes. The service in package customers applies them through the ports.
//
// The records themselves (ports.Account, ports.SignInLink, ports.Session) are defined by the ports
// contract; this package works on their values so that it imports nothing but the standard library
// and core/errs.
package account
