/* clients.c: this process's loop and clients (see clients.h). */
#include "io/clients.h"


omni_clients_t omni_clients;
