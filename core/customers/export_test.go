package customers

import "context"

// Derive runs one argon2id computation the way every password path does (through a hash slot).
func Derive(ctx context.Context, s *Service) error {
	_, err := s.derive(ctx, "password", make([]byte, 16), s.params, 32)
	return err
}
