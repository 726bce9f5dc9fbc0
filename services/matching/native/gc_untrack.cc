// untrack(obj) -> obj: takes one object out of the cyclic garbage collector's view.
//
// A matching shard keeps an OrderState (a slots dataclass) per working order, and CPython
// tracks every instance of such a class, so each collection of an older generation
// walked all of them: measured in a stream run, 80,000-100,000 of the 210,000-235,000
// objects in the oldest generation, a middle-generation collection every ~30 s pausing
// the process 90-170 ms and a full one 330 ms. An OrderState holds only ints and strs,
// so it can never be part of a reference cycle; its reference count frees it as before.
// Only for objects like that: an untracked object in a cycle would never be freed.
#include "native.hpp"

namespace bourse::matching_native {

PyObject* untrack(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 1) {
    PyErr_SetString(PyExc_TypeError, "untrack(obj)");
    return nullptr;
  }
  PyObject* obj = args[0];
  if (PyObject_IS_GC(obj) && PyObject_GC_IsTracked(obj)) PyObject_GC_UnTrack(obj);
  Py_INCREF(obj);
  return obj;
}

}  // namespace bourse::matching_native
