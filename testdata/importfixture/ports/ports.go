// Package ports breaks the rule: ports importing a framework.
package ports

import (
	"example.com/fixture/core/pki/authority"
	"github.com/gofiber/fiber/v2"
)

// Placeholders.
var (
	Err = authority.Err
	App fiber.App
)
