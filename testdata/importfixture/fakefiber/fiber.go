// Package fiber stands in for the real framework: the checker knows it by its import path.
package fiber

// App is a placeholder.
type App struct{}
