import { createRoot } from 'react-dom/client';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { App } from './App.tsx';

const root = document.getElementById('root');
if (root === null) throw new Error('no #root element');
createRoot(root).render(<App />);
