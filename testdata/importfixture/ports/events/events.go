// Package events is allowed: a ports subpackage with the standard library only.
package events

// Name is a placeholder.
const Name = "clean"
