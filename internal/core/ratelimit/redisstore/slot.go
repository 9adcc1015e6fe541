package redisstore

import "strings"

// keySlot is the Redis Cluster hash slot of a Redis key: that of its hash
// tag (what lies between the first "{" and the next "}", when not empty),
// else of the whole key. A bucket key may itself hold braces (a user id with
// a "}" ends the tag early), so only this rule, not the bucket key alone,
// says which keys may share a script call.
func keySlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return slotOf(key)
}

// slotOf is the CRC16 (XMODEM) of s modulo 16384: the slot of a key that is
// its own hash tag.
func slotOf(s string) int {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
