// Package pgstore is allowed: an adapter may import its framework.
package pgstore

import "github.com/gofiber/fiber/v2"

// Store is a placeholder.
type Store struct{ App fiber.App }
