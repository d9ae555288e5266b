module example.com/fixture

go 1.26

require github.com/gofiber/fiber/v2 v2.0.0

replace github.com/gofiber/fiber/v2 => ./fakefiber
