/* uuid.c: recognising a UUID's canonical text form. */
#include <string.h>

#include "lib/uuid.h"


int omni_uuid_valid(const char *s)
{
    int i;

    if (s == NULL || strlen(s) != 36) {
        return 0;
    }
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return 0;
            }
        } else if (!((s[i] >= '0' && s[i] <= '9')
                       || (s[i] >= 'a' && s[i] <= 'f')
                       || (s[i] >= 'A' && s[i] <= 'F'))) {
            return 0;
        }
    }
    return 1;
}
