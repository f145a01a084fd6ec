import sys; sys.path.insert(0, 'tests')
from test_explain import _random_model
import convext
m, s = _random_model(11, 1)
print(m, s)
e = convext.explain(m, s)
for o in range(e.output_shape[-1]): print(o, e.inputs_of(o))
