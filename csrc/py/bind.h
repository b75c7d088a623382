/* bind.h: the method tables each bind_<family>.c exports; module.c adds them
 * all to o1pruner._core. A new family adds one line here and one in module.c. */
#ifndef O1P_BIND_H
#define O1P_BIND_H

#include <Python.h>

extern PyMethodDef o1p_rewards_methods[];
extern PyMethodDef o1p_ppo_methods[];
extern PyMethodDef o1p_grader_methods[];

#endif /* O1P_BIND_H */
