/* uuid.h: the canonical text form of a UUID, as ids, cursors and the
 * gateway's X-User-Id carry it. */
#ifndef OMNI_UUID_H
#define OMNI_UUID_H

/* 1 when s is a UUID in its canonical text form (any hex case), else 0
 * (NULL included). Pure. */
int omni_uuid_valid(const char *s);

#endif
