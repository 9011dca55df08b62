#ifndef CDMIRROR_H
#define CDMIRROR_H
#include "dmirror_abi.h"
#include "dmirror_shim.h"
#endif
